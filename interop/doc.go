// Package interop holds conformance tests that run Lifeline's protocol code
// against independent implementations. It is its own module so that those
// implementations and their dependencies never enter the lifeline module,
// let alone the binary.
package interop
