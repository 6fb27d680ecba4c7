//! The subcommands of `kovs-agent`: each turns its arguments into a configuration and calls
//! the library.

pub mod args;
pub mod compile;
pub mod flows;
pub mod run;
