//! Rebuilds the crate when a file of the web UI changes: `include_dir!`
//! embeds `ui/` but does not tell cargo it read it, so an edited page
//! was served stale until something else changed.

fn main() {
    println!("cargo:rerun-if-changed=ui");
}
