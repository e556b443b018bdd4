//! `#[derive(Record)]`, `#[derive(FromRow)]`, `#[derive(Insert)]`, `#[derive(Changes)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Type};

pub(crate) enum Which {
    Record,
    FromRow,
    Insert,
    Changes,
}

struct Field {
    ident: syn::Ident,
    ty: Type,
    column: String,
}

fn fields(input: &DeriveInput, what: &str) -> syn::Result<Vec<Field>> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            format!("#[derive({what})] works on structs with named fields"),
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            format!("#[derive({what})] needs named fields: each field is a column"),
        ));
    };
    let mut out = Vec::new();
    for f in &named.named {
        let ident = f.ident.clone().expect("named field");
        let mut column = ident.to_string().trim_start_matches("r#").to_owned();
        for attr in &f.attrs {
            if !attr.path().is_ident("record") {
                continue;
            }
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let lit: LitStr = meta.value()?.parse()?;
                    column = lit.value();
                    Ok(())
                } else {
                    Err(meta.error("unknown field option; expected `rename = \"column\"`"))
                }
            })?;
        }
        out.push(Field {
            ident,
            ty: f.ty.clone(),
            column,
        });
    }
    Ok(out)
}

pub(crate) fn expand(which: Which, input: TokenStream) -> TokenStream {
    let result = syn::parse2::<DeriveInput>(input).and_then(|input| match which {
        Which::Record => record(&input),
        Which::FromRow => from_row(&input, "FromRow"),
        Which::Insert => insert(&input),
        Which::Changes => changes(&input),
    });
    result.unwrap_or_else(syn::Error::into_compile_error)
}

fn from_row(input: &DeriveInput, what: &str) -> syn::Result<TokenStream> {
    let fields = fields(input, what)?;
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    let reads = fields.iter().map(|f| {
        let (ident, column) = (&f.ident, &f.column);
        quote!(#ident: row.try_get(#column)?)
    });
    Ok(quote! {
        impl #impl_g ::worker_kit::db::FromRow for #name #ty_g #where_g {
            fn from_row(row: &::worker_kit::db::__private::Row) -> ::core::result::Result<Self, ::worker_kit::db::__private::PgError> {
                ::core::result::Result::Ok(Self { #(#reads,)* })
            }
        }
    })
}

fn record(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut table = None;
    let mut id_column = "id".to_owned();
    for attr in &input.attrs {
        if !attr.path().is_ident("record") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                table = Some(meta.value()?.parse::<LitStr>()?.value());
                Ok(())
            } else if meta.path.is_ident("id") {
                id_column = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else {
                Err(meta.error("unknown option; expected `table = \"name\"` or `id = \"column\"`"))
            }
        })?;
    }
    let Some(table) = table else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Record)] needs the table: #[record(table = \"items\")]",
        ));
    };
    let fields = fields(input, "Record")?;
    let Some(id) = fields.iter().find(|f| f.column == id_column) else {
        return Err(syn::Error::new(
            input.ident.span(),
            format!(
                "no field maps to the id column `{id_column}`; name it in #[record(id = \"column\")]"
            ),
        ));
    };
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    let columns = fields.iter().map(|f| &f.column);
    let (id_ident, id_ty) = (&id.ident, &id.ty);
    let from_row = from_row(input, "Record")?;
    Ok(quote! {
        #from_row

        impl #impl_g ::worker_kit::db::Record for #name #ty_g #where_g {
            type Id = #id_ty;
            const TABLE: &'static str = #table;
            const ID: &'static str = #id_column;
            const COLUMNS: &'static [&'static str] = &[#(#columns),*];
            fn id(&self) -> &Self::Id {
                &self.#id_ident
            }
        }
    })
}

fn insert(input: &DeriveInput) -> syn::Result<TokenStream> {
    let fields = fields(input, "Insert")?;
    if fields.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Insert)] needs at least one field",
        ));
    }
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    let columns = fields.iter().map(|f| &f.column);
    let values = fields.iter().map(|f| {
        let ident = &f.ident;
        quote!(&self.#ident as &(dyn ::worker_kit::db::__private::ToSql + ::core::marker::Sync))
    });
    Ok(quote! {
        impl #impl_g ::worker_kit::db::Insert for #name #ty_g #where_g {
            fn columns(&self) -> &'static [&'static str] {
                &[#(#columns),*]
            }
            fn values(&self) -> ::std::vec::Vec<&(dyn ::worker_kit::db::__private::ToSql + ::core::marker::Sync)> {
                ::std::vec![#(#values),*]
            }
        }
    })
}

fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn changes(input: &DeriveInput) -> syn::Result<TokenStream> {
    let fields = fields(input, "Changes")?;
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    let mut pushes = Vec::new();
    for f in &fields {
        if option_inner(&f.ty).is_none() {
            return Err(syn::Error::new(
                f.ty.span(),
                "#[derive(Changes)] fields must be `Option<T>` (None = leave the column alone; use Option<Option<T>> to set NULL)",
            ));
        }
        let (ident, column) = (&f.ident, &f.column);
        pushes.push(quote! {
            if let ::core::option::Option::Some(v) = &self.#ident {
                out.push((#column, v as &(dyn ::worker_kit::db::__private::ToSql + ::core::marker::Sync)));
            }
        });
    }
    Ok(quote! {
        impl #impl_g ::worker_kit::db::Changes for #name #ty_g #where_g {
            fn changes(&self) -> ::std::vec::Vec<(&'static str, &(dyn ::worker_kit::db::__private::ToSql + ::core::marker::Sync))> {
                let mut out = ::std::vec::Vec::new();
                #(#pushes)*
                out
            }
        }
    })
}
