// The migrations are embedded by `sqlx::migrate!` when the crate compiles: compile it again
// whenever one of them changes (sqlx's own recommendation; a proc macro cannot say so itself).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
