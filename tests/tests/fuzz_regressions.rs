//! Every input that ever crashed a fuzz target, and the hand-made hostile inputs of issue 22
//! (headers claiming 10^12 elements), replayed through the targets' own entry points
//! (`fuzz/src/entries.rs`) without the fuzzer: `tests/data/fuzz-regressions/<target>/*`. The
//! seed corpora (`fuzz/corpus/<target>/*`, real files of the tree) go through them too, so an
//! entry point that stops accepting its real inputs is noticed. PNG inputs are replayed by
//! `native-cli`'s `image_io` tests.

#[allow(dead_code)]
#[path = "../../fuzz/src/entries.rs"]
mod entries;

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut n = 0;
    for dir in [root.join("tests/data/fuzz-regressions").join(target), root.join("fuzz/corpus").join(target)] {
        let Ok(files) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = files.map(|f| f.unwrap().path()).filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md")).collect();
        files.sort();
        for file in files {
            eprintln!("{target}: {}", file.display());
            entry(&std::fs::read(&file).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no inputs for {target}");
}

/// One test per target, named after it.
macro_rules! targets {
    ($($target:ident),*) => {$(
        #[test]
        fn $target() {
            replay(stringify!($target), entries::$target);
        }
    )*};
}

targets!(model_bytes, run_dir, train_config, npy, idx, mixture, diffusers);
