//! Wire codec (stub).
