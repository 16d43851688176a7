# tests/mqtt.mk — tests owned by the mqtt work; included from tests/local.mk.
