//! Drivers start, health-check and stop instances of a service. (Being written.)
