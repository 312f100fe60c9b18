//! Arrives in the next commit.
fn main() {}
