//! Chain tests against an in-process fake milter.
