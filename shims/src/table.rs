//! The local-or-forward system call table (to be written).
