//! Unit tests of the scan, the emitted code and the ELF rewrite.
