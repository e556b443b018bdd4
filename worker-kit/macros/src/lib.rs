//! Route macros for worker-kit.
