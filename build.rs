//! Lays out the catamount binary's code for a small idle footprint (issue
//! 15): an optimized build links with src/hot-text.ld, which places the
//! functions an idle server has run (start, a few requests, quiet) before
//! the rest of `.text`. The kernel maps a program's code a 64 KiB block
//! around each page that runs, so where the code that runs is spread over
//! 1.6 MiB of TLS, backtrace and cluster code it maps 1.1 MiB; gathered it
//! maps about 0.5 MiB. bench/hot-text regenerates the list; a stale one
//! still links (a name no longer there matches nothing).
//!
//! Only the `catamount` binary gets it (`rustc-link-arg-bins`): a program
//! that embeds the library links its own way. Unoptimized builds (tests,
//! `cargo run`) link as before. GNU ld and lld both read the script (it only
//! adds a section `INSERT`ed before `.text`); a linker that does not (mold)
//! is told to skip it with CATAMOUNT_NO_HOT_TEXT=1.

use std::env;

/// The linker script, relative to the package root.
const SCRIPT: &str = "src/hot-text.ld";
/// Set (to anything) to link without the script.
const OPT_OUT: &str = "CATAMOUNT_NO_HOT_TEXT";

fn main() {
    println!("cargo:rerun-if-changed={SCRIPT}");
    println!("cargo:rerun-if-env-changed={OPT_OUT}");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let optimized = env::var("OPT_LEVEL").is_ok_and(|level| level != "0");
    if !linux || !optimized || env::var_os(OPT_OUT).is_some() {
        return;
    }
    let root = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{root}/{SCRIPT}");
    // -Wl splits its argument at commas: such a path cannot be passed.
    if script.contains(',') {
        println!(
            "cargo:warning=linking without {SCRIPT}: its path {script:?} has a comma, \
             which the linker option cannot carry (a larger idle RSS, nothing else)"
        );
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{script}");
}
