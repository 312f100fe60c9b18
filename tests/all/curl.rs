//! Arrives in the next commit.
