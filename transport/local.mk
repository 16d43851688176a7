# transport/local.mk — the wire layer: wire constants, msgpack frames with a strict decoder,
# tensor payload codecs, chunking and reassembly, the topic scheme (docs/PROTOCOL.md).
noinst_LTLIBRARIES += transport/libnnm_transport.la
libnnmesh_la_LIBADD += transport/libnnm_transport.la

transport_libnnm_transport_la_CFLAGS = $(AM_CFLAGS) $(MSGPACK_CFLAGS) $(LZ4_CFLAGS) $(SODIUM_CFLAGS)
transport_libnnm_transport_la_SOURCES = \
	transport/wire_int.h \
	transport/frame.c transport/tensor_codec.c transport/chunk.c transport/topic.c \
	transport/link_int.h transport/mqtt.c transport/link.c transport/probe.c

nnmeshinclude_HEADERS += include/nnmesh/wire.h include/nnmesh/transport.h
