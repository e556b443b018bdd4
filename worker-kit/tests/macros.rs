//! The route macros: what compiles, and the errors for what does not.

#[test]
fn route_macros() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
