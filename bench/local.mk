EXTRA_DIST += bench/single_node.sh
include bench/wire.mk
include bench/dist.mk
include bench/load.mk
