//! Reading and validating `cutover.toml`. (Being written.)
