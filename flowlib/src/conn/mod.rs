//! The switch connection: tokio at the edge of the sans-I/O codec.
