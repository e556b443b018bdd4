//! Parsing and expansion of the route attributes.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Path, ReturnType, Token};

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Rpc,
    Task,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Rpc => "rpc",
            Kind::Task => "task",
        }
    }
}

/// What the attribute names: a route by string, or a contract type.
enum Target {
    Name(LitStr),
    Contract(Path),
}

/// The whole attribute: the route, then optionally `allow = ["caller", "prefix-*"]`.
struct Attr {
    target: Target,
    allow: Option<Vec<LitStr>>,
}

impl Parse for Attr {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let target: Target = input.parse()?;
        if input.is_empty() {
            return Ok(Attr {
                target,
                allow: None,
            });
        }
        input.parse::<Token![,]>()?;
        let key: syn::Ident = input.parse()?;
        if key != "allow" {
            return Err(syn::Error::new(
                key.span(),
                format!("unknown argument `{key}`; expected `allow = [\"caller\", ...]`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let content;
        syn::bracketed!(content in input);
        let callers = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
        for c in &callers {
            if c.value().trim().is_empty() || c.value().len() > 255 {
                return Err(syn::Error::new(
                    c.span(),
                    "a caller is a broker user name (1 to 255 bytes, `*` matching any run of characters)",
                ));
            }
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the allow list"));
        }
        Ok(Attr {
            target,
            allow: Some(callers.into_iter().collect()),
        })
    }
}

impl Parse for Target {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error(
                "expected a route name or a contract: #[rpc(\"route_name\")] or #[rpc(contract = path::Type)]",
            ));
        }
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            if lit.value().trim().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "the route name must not be empty",
                ));
            }
            if lit.value().len() > 255 {
                return Err(syn::Error::new(
                    lit.span(),
                    "the route name is a queue name and may be at most 255 bytes",
                ));
            }
            if !input.is_empty() && !input.peek(Token![,]) {
                return Err(input.error("unexpected tokens after the route name"));
            }
            return Ok(Target::Name(lit));
        }
        let key: syn::Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a route name string or `contract = path::Type`",
            )
        })?;
        if key != "contract" {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown argument `{key}`; expected a route name string or `contract = path::Type`"
                ),
            ));
        }
        input.parse::<Token![=]>()?;
        let path: Path = input.parse()?;
        if !input.is_empty() && !input.peek(Token![,]) {
            return Err(input.error("unexpected tokens after the contract type"));
        }
        Ok(Target::Contract(path))
    }
}

pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, attr, item.clone()) {
        Ok(ts) => ts,
        // Keep the original item so the rest of the crate still type-checks and the only
        // error shown is ours.
        Err(e) => {
            let err = e.into_compile_error();
            quote! { #err #item }
        }
    }
}

fn try_expand(kind: Kind, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let Attr { target, allow } = syn::parse2(attr)?;
    let func: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[{}] goes on an `async fn` handler", kind.attr()),
        )
    })?;
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!("#[{}] handlers must be `async fn`", kind.attr()),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "route handlers cannot be generic: each argument must be a concrete extractor type",
        ));
    }
    if let ReturnType::Default = sig.output {
        return Err(syn::Error::new(
            sig.ident.span(),
            "route handlers must return `Result<T, E>` (T: Serialize, E: IntoErrorReply)",
        ));
    }
    let mut arg_types = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "route handlers are free functions; they cannot take `self`",
                ));
            }
            FnArg::Typed(pt) => {
                if let syn::Type::Reference(r) = &*pt.ty {
                    return Err(syn::Error::new(
                        r.span(),
                        "handler arguments must be owned extractors (`Payload<T>`, `State<S>`, `Meta`), not references",
                    ));
                }
                arg_types.push((*pt.ty).clone());
            }
        }
    }
    if arg_types.len() > 8 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "route handlers take at most 8 extractor arguments",
        ));
    }

    let vis = &func.vis;
    let name = &sig.ident;
    let docs: Vec<_> = func
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let attrs = &func.attrs;
    let inputs = &sig.inputs;
    let output = &sig.output;
    let block = &func.block;

    let (route_trait, worker_ty, contract_trait, contract_method) = match kind {
        Kind::Rpc => (
            quote!(::worker_kit::__private::RpcRoute),
            quote!(::worker_kit::__private::RpcWorker),
            quote!(::worker_kit::Contract),
            quote!(contract),
        ),
        Kind::Task => (
            quote!(::worker_kit::__private::TaskRoute),
            quote!(::worker_kit::__private::QueueWorker),
            quote!(::worker_kit::TaskContract),
            quote!(task),
        ),
    };
    let (route_const, mut register_body) = match &target {
        Target::Name(lit) => (
            quote!(#lit),
            quote!(worker.route(Self::ROUTE, Self::handler)),
        ),
        Target::Contract(path) => (
            quote_spanned!(path.span()=> <#path as #contract_trait>::ROUTE),
            quote_spanned!(path.span()=> worker.#contract_method::<#path, _, _, _>(Self::handler)),
        ),
    };

    if let Some(callers) = allow {
        register_body = quote!(#register_body.allow(Self::ROUTE, [#(#callers),*]));
    }

    Ok(quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #name;

        impl #name {
            /// The route (queue) name.
            #vis const ROUTE: &'static str = #route_const;

            #(#attrs)*
            #vis async fn handler(#inputs) #output #block
        }

        impl<__S> #route_trait<__S> for #name
        where
            __S: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
            #(#arg_types: ::worker_kit::FromMessage<__S> + ::core::marker::Send + 'static,)*
        {
            fn name(&self) -> &'static str {
                Self::ROUTE
            }

            fn register(self, worker: #worker_ty<__S>) -> #worker_ty<__S> {
                #register_body
            }
        }
    })
}
