//! `#[queries("path/to/queries.sql")]`: SQL kept in a file, turned into typed methods.
//!
//! The file holds named blocks (as aiosql does):
//!
//! ```sql
//! -- name: search_items
//! -- Items whose name contains $1.
//! SELECT id, name FROM items WHERE name ILIKE '%' || $1 || '%' ORDER BY id LIMIT $2;
//!
//! -- name: count_items^
//! SELECT count(*) FROM items;
//!
//! -- name: rename_item!
//! UPDATE items SET name = $2 WHERE id = $1;
//! ```
//!
//! A name alone returns every row (`Vec<T>`), `^` one row (`T`, or `Option<T>`), `!` the
//! number of rows affected (`u64`). Each method of the annotated trait must have a block
//! and each block a method, with as many arguments as the block has `$n` parameters;
//! anything else is a compile error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, ItemTrait, LitStr, ReturnType, TraitItem, Type};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Many,
    One,
    Execute,
}

#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) kind: Kind,
    pub(crate) sql: String,
    pub(crate) line: usize,
}

/// Splits the file into named blocks.
pub(crate) fn parse_blocks(text: &str) -> Result<BTreeMap<String, Block>, String> {
    let mut blocks: BTreeMap<String, Block> = BTreeMap::new();
    let mut current: Option<(String, Block)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("-- name:") {
            if let Some((name, block)) = current.take() {
                blocks.insert(name, block);
            }
            let raw = rest.trim();
            let (name, kind) = if let Some(n) = raw.strip_suffix('!') {
                (n, Kind::Execute)
            } else if let Some(n) = raw.strip_suffix('^') {
                (n, Kind::One)
            } else {
                (raw, Kind::Many)
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "line {}: `{raw}` is not a query name (letters, digits, _; then optionally ^ or !)",
                    i + 1
                ));
            }
            if blocks.contains_key(name) {
                return Err(format!("line {}: query `{name}` is defined twice", i + 1));
            }
            current = Some((
                name.to_owned(),
                Block {
                    kind,
                    sql: String::new(),
                    line: i + 1,
                },
            ));
        } else if let Some((_, block)) = current.as_mut() {
            // Comment lines inside a block document it; they are not sent.
            if trimmed.starts_with("--") || trimmed.is_empty() {
                continue;
            }
            if !block.sql.is_empty() {
                block.sql.push('\n');
            }
            block.sql.push_str(line.trim_end());
        } else if !trimmed.is_empty() && !trimmed.starts_with("--") {
            return Err(format!("line {}: SQL outside a `-- name:` block", i + 1));
        }
    }
    if let Some((name, block)) = current.take() {
        blocks.insert(name, block);
    }
    for (name, block) in &mut blocks {
        let sql = block.sql.trim().trim_end_matches(';').trim_end().to_owned();
        if sql.is_empty() {
            return Err(format!("line {}: query `{name}` has no SQL", block.line));
        }
        block.sql = sql;
    }
    Ok(blocks)
}

/// The highest `$n` in `sql`, ignoring string literals, quoted identifiers and comments.
pub(crate) fn param_count(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let q = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
            }
            b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j > start
                    && let Ok(n) = sql[start..j].parse::<usize>()
                {
                    max = max.max(n);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    max
}

fn ok_type(output: &ReturnType) -> Option<&Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(p) = &**ty else { return None };
    let seg = p.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    try_expand(attr, item).unwrap_or_else(syn::Error::into_compile_error)
}

fn try_expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let path_lit: LitStr = syn::parse2(attr).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected the SQL file's path: #[queries(\"models/<service>/queries.sql\")]",
        )
    })?;
    let mut tr: ItemTrait = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[queries] goes on a trait whose methods name the queries",
        )
    })?;
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = root.join(path_lit.value());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        syn::Error::new(
            path_lit.span(),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let blocks = parse_blocks(&text)
        .map_err(|e| syn::Error::new(path_lit.span(), format!("{}: {e}", path.display())))?;
    let path_str = path.display().to_string();

    let mut used = Vec::new();
    let mut impls = Vec::new();
    for item in &mut tr.items {
        let TraitItem::Fn(f) = item else {
            return Err(syn::Error::new(
                item.span(),
                "only methods (one per query) go in a #[queries] trait",
            ));
        };
        let name = f.sig.ident.to_string();
        let Some(block) = blocks.get(&name) else {
            return Err(syn::Error::new(
                f.sig.ident.span(),
                format!("no `-- name: {name}` block in {path_str}"),
            ));
        };
        used.push(name.clone());
        if f.sig.asyncness.is_none() {
            return Err(syn::Error::new(
                f.sig.fn_token.span(),
                "query methods are `async fn`",
            ));
        }
        let mut args = Vec::new();
        let mut has_self = false;
        for input in &f.sig.inputs {
            match input {
                FnArg::Receiver(r) if r.reference.is_some() && r.mutability.is_none() => {
                    has_self = true
                }
                FnArg::Receiver(r) => {
                    return Err(syn::Error::new(r.span(), "query methods take `&self`"));
                }
                FnArg::Typed(pt) => match &*pt.pat {
                    syn::Pat::Ident(id) => args.push(id.ident.clone()),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "query arguments must be plain names",
                        ));
                    }
                },
            }
        }
        if !has_self {
            return Err(syn::Error::new(f.sig.span(), "query methods take `&self`"));
        }
        let want = param_count(&block.sql);
        if args.len() != want {
            return Err(syn::Error::new(
                f.sig.inputs.span(),
                format!(
                    "query `{name}` ({path_str}:{}) uses {want} parameter(s) ($1..${want}) but the method takes {}",
                    block.line,
                    args.len()
                ),
            ));
        }
        let sql = &block.sql;
        let fetch = match block.kind {
            Kind::Many => {
                quote!(::worker_kit::db::__private::fetch_all(self, SQL, &[#(&#args),*]).await)
            }
            Kind::One if ok_type(&f.sig.output).is_some_and(is_option) => {
                quote!(::worker_kit::db::__private::fetch_optional(self, SQL, &[#(&#args),*]).await)
            }
            Kind::One => {
                quote!(::worker_kit::db::__private::fetch_one(self, #name, SQL, &[#(&#args),*]).await)
            }
            Kind::Execute => {
                quote!(::worker_kit::db::Executor::execute(self, SQL, &[#(&#args),*]).await)
            }
        };
        let output = match &f.sig.output {
            ReturnType::Type(_, ty) => ty.clone(),
            ReturnType::Default => {
                return Err(syn::Error::new(
                    f.sig.span(),
                    "query methods return `Result<_, DbError>`",
                ));
            }
        };
        // The trait method: documented with its SQL, returning a Send future.
        let doc = format!(" ```sql\n {}\n ```", sql.replace('\n', "\n "));
        f.attrs.push(syn::parse_quote!(#[doc = ""]));
        f.attrs.push(syn::parse_quote!(#[doc = #doc]));
        let mut sig = f.sig.clone();
        sig.asyncness = None;
        sig.output = syn::parse_quote!(-> impl ::core::future::Future<Output = #output> + ::core::marker::Send);
        f.sig = sig.clone();
        impls.push(quote! {
            #sig {
                async move {
                    const SQL: &str = #sql;
                    #fetch
                }
            }
        });
    }
    let unused: Vec<&String> = blocks.keys().filter(|k| !used.contains(k)).collect();
    if !unused.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            format!(
                "{path_str} has queries without a method in this trait: {}",
                unused
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let name = &tr.ident;
    Ok(quote! {
        #tr

        impl<__E: ::worker_kit::db::Executor> #name for __E {
            #(#impls)*
        }

        // Rebuild when the SQL file changes.
        const _: &str = ::core::include_str!(#path_str);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_kinds() {
        let text = "-- leading comment\n\n-- name: a\n-- doc\nSELECT 1;\n\n-- name: b^\nSELECT $1\n  , $2;\n-- name: c!\nDELETE FROM t WHERE id = $1;\n";
        let b = parse_blocks(text).unwrap();
        assert_eq!(b["a"].kind, Kind::Many);
        assert_eq!(b["a"].sql, "SELECT 1");
        assert_eq!(b["b"].kind, Kind::One);
        assert_eq!(b["b"].sql, "SELECT $1\n  , $2");
        assert_eq!(b["c"].kind, Kind::Execute);
        assert_eq!(b["c"].line, 10);
    }

    #[test]
    fn bad_files() {
        assert!(parse_blocks("SELECT 1;").unwrap_err().contains("outside"));
        assert!(
            parse_blocks("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            parse_blocks("-- name: a\n-- only a comment\n")
                .unwrap_err()
                .contains("no SQL")
        );
        assert!(
            parse_blocks("-- name: a-b\nSELECT 1")
                .unwrap_err()
                .contains("not a query name")
        );
    }

    #[test]
    fn parameters_counted_outside_literals() {
        assert_eq!(param_count("SELECT $1, $2, $1"), 2);
        assert_eq!(param_count("SELECT '$9', \"$8\", $3"), 3);
        assert_eq!(param_count("SELECT 1"), 0);
        assert_eq!(param_count("SELECT $10"), 10);
    }
}
