# tests/wire.mk — tests owned by the wire work; included from tests/local.mk.
# Unit tests of transport/ (frames, tensor codecs, chunking, topics) and the two fuzz targets
# (frame, topic; run by tests/fuzz.sh through the table in tests/fuzz/run.sh).
WIRE_TEST_CFLAGS = $(TEST_CFLAGS) $(MSGPACK_CFLAGS) $(LZ4_CFLAGS) -I$(top_srcdir)/transport \
	-DNNM_TOP_SRCDIR='"$(abs_top_srcdir)"'

check_PROGRAMS += tests/unit/test_frame
TESTS += tests/unit/test_frame
tests_unit_test_frame_SOURCES = tests/unit/test_frame.c
tests_unit_test_frame_CFLAGS = $(WIRE_TEST_CFLAGS)
tests_unit_test_frame_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/unit/test_tensor_codec
TESTS += tests/unit/test_tensor_codec
tests_unit_test_tensor_codec_SOURCES = tests/unit/test_tensor_codec.c
tests_unit_test_tensor_codec_CFLAGS = $(WIRE_TEST_CFLAGS)
tests_unit_test_tensor_codec_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/unit/test_chunk
TESTS += tests/unit/test_chunk
tests_unit_test_chunk_SOURCES = tests/unit/test_chunk.c
tests_unit_test_chunk_CFLAGS = $(WIRE_TEST_CFLAGS)
tests_unit_test_chunk_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/unit/test_topic
TESTS += tests/unit/test_topic
tests_unit_test_topic_SOURCES = tests/unit/test_topic.c
tests_unit_test_topic_CFLAGS = $(WIRE_TEST_CFLAGS)
tests_unit_test_topic_LDADD = $(TEST_LIBS)

EXTRA_DIST += tests/vectors/frames tests/fuzz/fuzz_frame.c tests/fuzz/fuzz_topic.c \
	tests/fuzz/gen_corpus_wire.py docs/PROTOCOL.md
