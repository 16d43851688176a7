# tests/mqtt.mk — tests owned by the mqtt work; included from tests/local.mk.
# The MQTT session and the secure link against real mosquitto brokers started by
# tests/support/broker.c on free loopback ports ($MOSQUITTO, exported by Makefile.am).
MQTT_TEST_CFLAGS = $(TEST_CFLAGS) $(SODIUM_CFLAGS) -I$(top_srcdir)/tests/support
MQTT_TEST_SUPPORT = tests/support/broker.c tests/support/broker.h

check_PROGRAMS += tests/unit/test_mqtt
TESTS += tests/unit/test_mqtt
tests_unit_test_mqtt_SOURCES = tests/unit/test_mqtt.c $(MQTT_TEST_SUPPORT)
tests_unit_test_mqtt_CFLAGS = $(MQTT_TEST_CFLAGS)
tests_unit_test_mqtt_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/unit/test_link
TESTS += tests/unit/test_link
tests_unit_test_link_SOURCES = tests/unit/test_link.c tests/unit/test_link_util.h \
	$(MQTT_TEST_SUPPORT)
tests_unit_test_link_CFLAGS = $(MQTT_TEST_CFLAGS)
tests_unit_test_link_LDADD = $(TEST_LIBS)

check_PROGRAMS += tests/unit/test_link_security
TESTS += tests/unit/test_link_security
tests_unit_test_link_security_SOURCES = tests/unit/test_link_security.c \
	tests/unit/test_link_util.h $(MQTT_TEST_SUPPORT)
tests_unit_test_link_security_CFLAGS = $(MQTT_TEST_CFLAGS)
tests_unit_test_link_security_LDADD = $(TEST_LIBS)
