//! Manifests for engines cutover does not drive yet, made from a config:
//! `cutover render kubernetes` ([`kubernetes`]). Rendering reads the config
//! only; it talks to no cluster and changes nothing.

pub mod kubernetes;
