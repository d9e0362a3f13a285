//! `#[derive(FromJs)]`: reads a JS value into a Rust struct or unit enum through the SDK's
//! `crate::args` readers, one `Reflect.get` per field.
//!
//! The SDK's option structs used to derive serde's `Deserialize` and go through
//! serde-wasm-bindgen: that is a visitor, a field matcher and a monomorphised
//! `deserialize_struct` per type, about 10 KB of the gzipped wasm for a dozen option types.
//! This derive reads the same `#[serde(...)]` attributes the TypeScript declarations are
//! generated from (`rename_all`, `rename`, `alias`), so a key is still written once.
//!
//! Structs: each field is read with `crate::args::field(value, key, aliases, &mut error)`
//! (the first error is kept and returned once every field is read), whose
//! `FieldValue` impls decide what an absent or mistyped value means (`Option` fields may be
//! absent, `JsValue` fields are kept as they are). Unit enums: the value must be one of the
//! variants' names.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Attribute, Data, DeriveInput, Fields, LitStr};

#[proc_macro_derive(FromJs, attributes(serde))]
pub fn derive_from_js(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What `#[serde(...)]` says about a type or a field.
#[derive(Default)]
struct SerdeAttrs {
    rename_all: Option<String>,
    rename: Option<String>,
    aliases: Vec<String>,
}

fn serde_attrs(attrs: &[Attribute]) -> syn::Result<SerdeAttrs> {
    let mut out = SerdeAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            let string = |meta: &syn::meta::ParseNestedMeta| -> syn::Result<String> {
                Ok(meta.value()?.parse::<LitStr>()?.value())
            };
            if meta.path.is_ident("rename_all") {
                out.rename_all = Some(string(&meta)?);
            } else if meta.path.is_ident("rename") {
                out.rename = Some(string(&meta)?);
            } else if meta.path.is_ident("alias") {
                out.aliases.push(string(&meta)?);
            } else if meta.input.peek(syn::Token![=]) {
                // `default = "…"`, `with = "…"`, `skip_serializing_if = "…"`: not about reading.
                meta.value()?.parse::<syn::Expr>()?;
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// A Rust name (`snake_case` field or `CamelCase` variant) in the case `rename_all` asks for.
fn renamed(name: &str, rule: Option<&str>) -> syn::Result<String> {
    Ok(match rule {
        None => name.to_string(),
        Some("lowercase") => name.to_lowercase(),
        Some("camelCase") => {
            let mut out = String::new();
            let mut upper = false;
            for c in name.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        }
        Some(other) => {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                format!("FromJs: rename_all = \"{other}\" is not supported"),
            ))
        }
    })
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    let rule = serde_attrs(&input.attrs)?.rename_all;
    let body = match &input.data {
        Data::Struct(s) => {
            let Fields::Named(fields) = &s.fields else {
                return Err(syn::Error::new_spanned(name, "FromJs: named fields only"));
            };
            let reads = fields
                .named
                .iter()
                .map(|f| {
                    let ident = f.ident.as_ref().expect("named field");
                    let attrs = serde_attrs(&f.attrs)?;
                    let key = match attrs.rename {
                        Some(key) => key,
                        None => renamed(&ident.to_string(), rule.as_deref())?,
                    };
                    let aliases = &attrs.aliases;
                    Ok(quote! { #ident: crate::args::field(value, #key, &[#(#aliases),*], &mut error) })
                })
                .collect::<syn::Result<Vec<_>>>()?;
            quote! {
                if !value.is_object() {
                    return Err(::std::string::String::from("expected an object"));
                }
                let mut error = None;
                let read = Self { #(#reads),* };
                match error {
                    None => Ok(read),
                    Some(e) => Err(e),
                }
            }
        }
        Data::Enum(e) => {
            let mut arms = Vec::new();
            let mut names = Vec::new();
            for v in &e.variants {
                if !matches!(v.fields, Fields::Unit) {
                    return Err(syn::Error::new_spanned(v, "FromJs: unit variants only"));
                }
                let ident = &v.ident;
                let key = match serde_attrs(&v.attrs)?.rename {
                    Some(key) => key,
                    None => renamed(&ident.to_string(), rule.as_deref())?,
                };
                arms.push(quote! { Some(#key) => Ok(Self::#ident) });
                names.push(key);
            }
            let expected = format!("one of {}", names.join(", "));
            quote! {
                match value.as_string().as_deref() {
                    #(#arms,)*
                    _ => Err(::std::string::String::from(#expected)),
                }
            }
        }
        Data::Union(_) => return Err(syn::Error::new_spanned(name, "FromJs: no unions")),
    };
    Ok(quote! {
        impl crate::args::FromJs for #name {
            fn read_js(value: &::wasm_bindgen::JsValue) -> ::std::result::Result<Self, ::std::string::String> {
                #body
            }
        }
    })
}
