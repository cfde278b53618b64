//! End-to-end tests live in `tests/`; this crate builds the test applications.
