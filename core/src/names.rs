//! The names of enum values in configs, on the command line and on the page, from one table.
//!
//! A named enum derives serde's `Serialize`/`Deserialize` with `rename_all` and `strum`'s
//! `EnumString` (`FromStr`), `Display`, `IntoStaticStr` and `VariantNames` with the same
//! `serialize_all`, so JSON, `--help`, the parser, the printed name and the page's menus read one
//! spelling per variant; a test per enum ([`serde_agrees`]) checks that serde and strum agree.
//! [`unknown`] is the `parse_err_fn` they share, so an unknown name is refused with the names
//! that are accepted:
//!
//! ```ignore
//! #[derive(Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
//! #[serde(rename_all = "kebab-case")]
//! #[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Split::unknown)]
//! pub enum Split { Train, Test }
//! impl Split {
//!     fn unknown(s: &str) -> String { crate::names::unknown("split", s, Self::VARIANTS) }
//! }
//! ```

/// The error for an unknown name: `unknown {what} `{found}`: expected one of {names}`.
pub fn unknown(what: &str, found: &str, names: &[&str]) -> String {
    format!("unknown {what} `{found}`: expected one of {}", names.join(", "))
}

/// Checks that every variant's strum name (`Display`, `FromStr`) is its serde name, and that
/// the variants' names are `T::VARIANTS` in order.
#[cfg(test)]
pub(crate) fn serde_agrees<T>(all: &[T])
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Display + std::str::FromStr + strum::VariantNames + PartialEq + std::fmt::Debug,
    <T as std::str::FromStr>::Err: std::fmt::Debug,
{
    let names: Vec<String> = all.iter().map(|v| v.to_string()).collect();
    assert_eq!(names, T::VARIANTS, "Display vs VariantNames");
    for v in all {
        let name = v.to_string();
        assert_eq!(serde_json::to_value(v).unwrap(), serde_json::Value::String(name.clone()), "serde vs strum for {v:?}");
        assert_eq!(&serde_json::from_value::<T>(serde_json::Value::String(name.clone())).unwrap(), v, "{name}");
        assert_eq!(&name.parse::<T>().unwrap(), v, "{name}");
    }
}
