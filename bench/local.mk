EXTRA_DIST += bench/single_node.sh
