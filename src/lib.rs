//! converge
