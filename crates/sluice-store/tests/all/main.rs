//! Specification tests of the Sluice store, in one binary so it links once.

mod bindings;
mod dlq;
mod isolation;
mod migrations;
mod modules;
mod state;
mod support;
mod tenants;
mod tokens;
