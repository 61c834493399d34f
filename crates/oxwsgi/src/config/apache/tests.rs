//! Tests of the Apache reader as a whole: files in a temporary folder →
//! `Site` and warnings.
