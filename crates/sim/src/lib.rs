//! Simulation of rollouts (being written).
