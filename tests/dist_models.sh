#!/bin/sh
# tests/dist_models.sh — issue 5 acceptance, functional part: 4 nodes on one mosquitto
# (examples/mesh-up.sh --nodes 4), n4 configured WITHOUT the model file. For LeNet-5
# (examples/models), torchvision MobileNetV2 and ResNet-18 (scripts/make_models.py), under the
# policies `equal` (every node gets parts) and `adaptive` (the default):
#   - `nnmesh infer --node n1 -o DIR` gives output.npy equal to `nnmesh run -o` within 1e-5 of
#     the output's scale (scripts/npy_compare.py --rtol 1e-5); with `equal` its trace shows
#     more than one node, n4 among them, and n1's stats count the outputs its peers answered
#     with, all in lossless codecs (coordinator.result_codecs: none or lz4);
#   - shell requests (mosquitto_pub -f x.npy on req/any/<tag>, user shell; the answer read
#     from res/+/<tag>) give the same output, each exactly one answer, none an error;
#   - with policy `capacity` and objective throughput (a pipeline over the nodes), stage
#     outputs go from peer to peer ([scheduler] forward): n1 sends routed tasks
#     (coordinator.tasks_routed), the nodes take pieces (forwarding.pieces_in), and the
#     output is nnmesh run's within 1e-5 (LeNet's pipeline is n1 then one split stage:
#     nothing to route, only the output is checked);
#   - the model-less n4 received its slices' weights over the wire: the coordinator's stats
#     count coordinator.models_sent, n4 logs the slices and keeps them in its cache dir,
#     and n4 never takes req/any requests (it holds no model: only addressed ones, which it
#     answers with a clear error).
# One mesh per model (shell requests run a node's first model).
# NNM_DIST_MODELS=lenet,mobilenet_v2,resnet18 (default) selects the models.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dist_lib.sh"
need_models mobilenet_v2,resnet18
input_of() {  # model id -> input .npy
  case $1 in lenet) echo "$SAMPLES/sample-1-pullover.npy" ;; *) echo "$MODELS/$1.input.npy" ;; esac
}
path_of() { case $1 in lenet) echo "$LENET" ;; *) echo "$MODELS/$1.onnx" ;; esac; }
# codec_counts NODE: its stats' coordinator.result_codecs, as "none f16 int8 lz4".
codec_counts() {
  echo $(for _c in none f16 int8 lz4; do node_stat "$1" coordinator.result_codecs.$_c; done)
}
lossless_results() {  # NODE: it used results from peers, none of them in a lossy codec
  set -- $(codec_counts "$1")
  [ $# -eq 4 ] && [ $(($1 + $4)) -gt 0 ] && [ $(($2 + $3)) -eq 0 ]
}

models_sent() {  # n1..n3 sent model slices (sets sent)
  sent=0
  for _n in n1 n2 n3; do sent=$((sent + $(node_stat $_n coordinator.models_sent || echo 0))); done
  [ "$sent" -gt 0 ]
}
n4_ran() { ran=$(node_stat n4 slices_run || echo 0); [ "${ran:-0}" -gt 0 ]; }

forwarded() {  # n1 sent routed tasks and the nodes took pieces (stats are published late)
  routed=$(node_stat n1 coordinator.tasks_routed)
  pieces=0
  for _n in $NODES; do pieces=$((pieces + $(node_stat $_n forwarding.pieces_in || echo 0))); done
  [ "${routed:-0}" -gt 0 ] && [ "$pieces" -gt 0 ]
}

t_all=$(now)
for id in $(echo "${NNM_DIST_MODELS:-lenet,mobilenet_v2,resnet18}" | tr , ' '); do
  model=$(path_of "$id")
  x=$(input_of "$id")
  sid=$(echo "$id" | tr _ -)   # a model id is [a-z0-9-]
  t=$(now)
  mesh_start "$sid" --nodes 4 --keepalive 5 --interval 2 --model "$sid=$model" --no-model n4
  "$NNMESH" run "$model" -i "$x" -o "$dir/ref" >/dev/null || fail "$id: nnmesh run failed"
  ref=$dir/ref/output.npy
  [ -f "$ref" ] || fail "$id: nnmesh run wrote no output.npy"
  echo "== $id: 4 nodes up (n4 without the model) in $(since "$t") s"

  for pol in equal adaptive; do
    set_policy $pol
    # nnmesh infer (sealed), coordinated by n1.
    out=$("$NNMESH" infer --config "$dir/shell.conf" --model "$model" --node n1 -i "$x" \
          -o "$dir/infer-$pol" --timeout 120 2>"$dir/infer-$pol.err") ||
      { dump_logs; fail "$id/$pol: nnmesh infer failed: $(cat "$dir/infer-$pol.err")"; }
    cmp_out=$("$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$dir/infer-$pol/output.npy" "$ref" --rtol 1e-5) ||
      fail "$id/$pol: nnmesh infer output differs from nnmesh run: $cmp_out"
    trace=$(echo "$out" | awk '/^trace/ { t = 1; next } t && $2 == "nodes" { print $1 }')
    nodes_used=$(echo "$trace" | sort -u | tr '\n' ' ' | sed 's/ $//')
    nparts=$(echo "$trace" | grep -c .)
    echo "PASS $id/$pol nnmesh infer: $cmp_out; $nparts part(s) on nodes: $nodes_used"
    if [ $pol = equal ]; then
      [ "$(echo "$trace" | sort -u | wc -l)" -gt 1 ] || fail "$id/equal: only one node ran parts: $out"
      echo "$trace" | grep -qx n4 || fail "$id/equal: the model-less n4 ran no part: $out"
      # n1 counts the output tensors its peers answered with, by wire codec: lossless ones
      # only ([scheduler] allow_lossy is off).
      wait_until 30 lossless_results n1 ||
        fail "$id/equal: n1's coordinator.result_codecs (none f16 int8 lz4): $(codec_counts n1)"
      echo "PASS $id/equal: n1's coordinator.result_codecs (none f16 int8 lz4): $(codec_counts n1)"
    fi
    # Shell requests on req/any: whichever node takes one coordinates it.
    tags=
    for k in 1 2 3; do
      tag=$pol-$k
      tags="$tags $tag"
      shell_req any "$tag" "$x"
      wait_until 120 has_answer "$tag" || { dump_logs; fail "$id/$pol: no answer to shell request $tag in 120 s"; }
    done
    sleep 0.5   # room for a duplicate to show
    res=$(ALLOW_ERRORS=0 check_results "$ref" $tags) || { echo "$res"; dump_logs; fail "$id/$pol: shell requests"; }
    echo "PASS $id/$pol shell requests (mosquitto_pub/mosquitto_sub):"
    echo "$res"
  done

  # A pipeline over the peers (objective throughput, policy capacity): stage outputs go from
  # peer to peer ([scheduler] forward), the answer is still nnmesh run's.
  set_policy capacity
  ctl n1 objective throughput
  wait_until 30 grep -q "objective set to throughput" "$dir/n1.log" || fail "$id: n1 did not take objective throughput"
  # A part drawn for a spot check ([scheduler] spot_check, 2% of the parts by default) is
  # never routed, so one request may route nothing: up to 4 requests, each answer checked.
  for attempt in 1 2 3 4; do
    out=$("$NNMESH" infer --config "$dir/shell.conf" --model "$model" --node n1 -i "$x" \
          -o "$dir/infer-fwd" --timeout 120 2>"$dir/infer-fwd.err") ||
      { dump_logs; fail "$id/forward: nnmesh infer failed: $(cat "$dir/infer-fwd.err")"; }
    cmp_out=$("$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$dir/infer-fwd/output.npy" "$ref" --rtol 1e-5) ||
      fail "$id/forward: nnmesh infer output differs from nnmesh run: $cmp_out"
    trace=$(echo "$out" | awk '/^trace/ { t = 1; next } t && $2 == "nodes" { print $1 }')
    # LeNet's pipeline has one stage after n1's own: nothing to route between peers.
    if [ "$id" = lenet ]; then
      forwarded || true
      break
    fi
    wait_until 15 forwarded && break
    echo "$id/forward: request $attempt routed nothing; n1 spot checks: $(node_stat n1 coordinator.spot_checks)"
    [ $attempt -lt 4 ] || {
      echo "$out"
      for _n in $NODES; do echo "$_n forwarding: $(node_stat $_n forwarding)"; done
      fail "$id/forward: n1 routed $routed task(s), the nodes took $pieces piece(s)"
    }
  done
  echo "PASS $id/forward (capacity, throughput) nnmesh infer: $cmp_out; parts on" \
       "$(echo "$trace" | tr '\n' ' '); n1 routed $routed task(s), nodes took $pieces piece(s)"
  ctl n1 objective latency

  # The model-less node got its slices' weights over the wire.
  # Polled (stats are published late, and a read may time out on a loaded machine).
  wait_until 30 models_sent ||
    fail "$id: no coordinator sent a model slice (coordinator.models_sent)"
  got=$(grep -c "model slice from .* received" "$dir/n4.log" || true)
  cached=$(ls "$dir/n4.key.cache" 2>/dev/null | grep -c '\.onnx$' || true)
  [ "$got" -gt 0 ] && [ "$cached" -gt 0 ] ||
    fail "$id: n4 logged $got model slice(s) and caches $cached: $(tail "$dir/n4.log")"
  wait_until 30 n4_ran || fail "$id: n4 ran no slice"
  echo "PASS $id: coordinators sent $sent model slice(s) (coordinator.models_sent); n4 logged $got," \
       "caches $(du -sh "$dir/n4.key.cache" | cut -f1) in $cached file(s), ran $ran slice(s)"
  # n4 is not in the req/any share (it has nothing to coordinate with); addressed, it says why.
  grep -q "shell request '\(equal\|adaptive\)-" "$dir/n4.log" && fail "$id: n4 took a req/any request"
  shell_req n4 direct "$x"
  wait_until 20 has_answer direct || fail "$id: n4 did not answer a request addressed to it"
  res=$(check_results "$ref" direct) || true
  echo "$res" | grep -q "error from n4: node n4 holds no model" || fail "$id: n4's answer: $res"
  echo "PASS $id: a request addressed to the model-less n4:$(echo "$res" | head -1 | cut -d: -f2-)"
  bash "$top_srcdir/examples/mesh-down.sh" "$dir"
  kill "$sub_pid" 2>/dev/null || true
  echo "== $id done in $(since "$t") s"
done
echo "all models done in $(since "$t_all") s"
