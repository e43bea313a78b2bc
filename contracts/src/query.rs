//! Query values as Strata's parts write them into URLs for one another (a title in a steering
//! request, CMCD on a segment request): every byte but RFC 3986's unreserved ones
//! percent-encoded.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but `A-Z a-z 0-9 - . _ ~`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `value` encoded for a query parameter.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
#[test]
fn only_unreserved_bytes_stay() {
    assert_eq!(encode("a-Z_0.9~"), "a-Z_0.9~");
    assert_eq!(
        encode("br=3200,sid=\"x y\"/é"),
        "br%3D3200%2Csid%3D%22x%20y%22%2F%C3%A9"
    );
}
