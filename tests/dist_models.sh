#!/bin/sh
# tests/dist_models.sh — issue 5 acceptance, functional part: 4 nodes on one mosquitto
# (examples/mesh-up.sh --nodes 4), n4 configured WITHOUT the model file. For LeNet-5
# (examples/models), torchvision MobileNetV2 and ResNet-18 (scripts/make_models.py), under the
# policies `equal` (every node gets parts) and `adaptive` (the default):
#   - `nnmesh infer --node n1 -o DIR` gives output.npy equal to `nnmesh run -o` within 1e-5 of
#     the output's scale (scripts/npy_compare.py --rtol 1e-5); with `equal` its trace shows
#     more than one node, n4 among them;
#   - shell requests (mosquitto_pub -f x.npy on req/any/<tag>, user shell; the answer read
#     from res/+/<tag>) give the same output, each exactly one answer, none an error;
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

  # The model-less node got its slices' weights over the wire.
  sent=0
  for n in n1 n2 n3; do sent=$((sent + $(node_stat $n coordinator.models_sent))); done
  [ "$sent" -gt 0 ] || fail "$id: no coordinator sent a model slice (coordinator.models_sent)"
  got=$(grep -c "model slice from .* received" "$dir/n4.log" || true)
  cached=$(ls "$dir/n4.key.cache" 2>/dev/null | grep -c '\.onnx$' || true)
  [ "$got" -gt 0 ] && [ "$cached" -gt 0 ] ||
    fail "$id: n4 logged $got model slice(s) and caches $cached: $(tail "$dir/n4.log")"
  ran=$(node_stat n4 slices_run)
  [ "$ran" -gt 0 ] || fail "$id: n4 ran no slice"
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
