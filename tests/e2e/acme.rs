//! ACME against pebble (written next).
