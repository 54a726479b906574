//! Integration tests: one binary, each test on its own fresh database with the real server.

mod absences;
mod answers;
mod browser;
mod campus;
mod cli;
mod client;
mod console;
mod docs;
mod durability;
mod erasure;
mod exposure;
mod hardening;
mod helpers;
mod layout;
mod login;
mod mail;
mod manager;
mod noskip;
mod ops;
mod platform;
mod races;
mod replicas;
mod retries;
mod subscriptions;
mod views;
mod wire;
