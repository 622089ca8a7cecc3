//! Connection (stub).
