//! Builds the guest plugins in `../plugins` for `wasm32-wasip2` and embeds the built-ins.
//!
//! The guests are their own cargo workspace, built into `<target>/wasm-guests` (a separate
//! target directory, so this build never waits on the outer build's lock). Host compiler flags
//! are removed from the guest build's environment so they do not leak into wasm code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const BUILTINS: &[&str] = &[
    "prometheus-health",
    "http-health",
    "slack-notify",
    "webhook-notify",
    "gitlab-notify",
    "rails-compat",
];

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest_dir
        .parent()
        .expect("host/ lives in the workspace root");
    let plugins = root.join("plugins");
    let wit = root.join("wit");
    watch(&plugins);
    watch(&wit);

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map_or_else(|| out_dir.join("wasm-guests"), |t| t.join("wasm-guests"));

    println!("cargo:rerun-if-env-changed=TAGSHIP_SKIP_GUESTS");
    if std::env::var_os("TAGSHIP_SKIP_GUESTS").is_some() {
        // For tools that cannot build wasm (fuzzing on nightly): a binary with no built-ins.
        println!("cargo:warning=TAGSHIP_SKIP_GUESTS is set: this build has no built-in plugins");
        std::fs::write(
            out_dir.join("builtins.rs"),
            "pub(crate) static BUILTINS: &[(&str, &[u8])] = &[];\n",
        )
        .expect("write builtins.rs");
        println!("cargo:rustc-env=TAGSHIP_GUESTS_DIR={}", out_dir.display());
        return;
    }
    check_target_installed();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--workspace")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    if plugins.join("Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .expect("cannot run cargo to build the guest plugins");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "building the guest plugins for {TARGET} failed:\n{}\n\nrun it by hand to see everything:\n  cargo build --release --target {TARGET} --manifest-path plugins/Cargo.toml --workspace",
            tail.join("\n")
        );
    }

    let wasm_dir = target_dir.join(TARGET).join("release");
    let mut generated = String::from(
        "/// The built-in plugins compiled into this binary: `(name, wasm)`.\npub(crate) static BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    for name in BUILTINS {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(
            file.exists(),
            "the guest build did not produce {}",
            file.display()
        );
        writeln!(
            generated,
            "    ({name:?}, include_bytes!({:?})),",
            file.display().to_string()
        )
        .expect("write to String");
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("builtins.rs"), generated).expect("write builtins.rs");
    // Tests and benches find the test programs here.
    println!("cargo:rustc-env=TAGSHIP_GUESTS_DIR={}", wasm_dir.display());
}

fn check_target_installed() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output();
    let installed = output
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|dir| dir.exists());
    assert!(
        installed,
        "the Rust target `{TARGET}` is not installed; tagship's built-in plugins need it.\n\
         hint: run `rustup target add {TARGET}` and build again"
    );
}

/// Asks cargo to rerun this script when any source file under `dir` changes (skipping build
/// output), and when files are added or removed (directories are watched too).
fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
