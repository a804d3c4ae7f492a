// Command descset turns the Meshtastic protobuf definitions that the npm
// package @meshtastic/protobufs ships into a protobuf FileDescriptorSet,
// which protoc reads with --descriptor_set_in as if it were the .proto files.
// `make meshtastic-proto` runs it; nothing else does.
//
// The package carries no .proto files: its dist/mod.js, written by
// protobuf-es (@bufbuild/protobuf's codegenv1), embeds each file as
//
//	const file_meshtastic_mesh = /* @__PURE__ */ fileDesc("<base64 FileDescriptorProto>", [file_meshtastic_channel, ...]);
//
// and protobuf-es strips two things before embedding, which its fileDesc
// restores at run time and so must we: the list of imported files (given
// instead as the second argument, by the JavaScript names of their
// descriptors) and every field's json_name (protoc's default, the field's
// name in lowerCamelCase).
//
// Usage:
//
//	go run ./radio/meshtastic/meshpb/internal/descset -js dist/mod.js -out set.binpb meshtastic/mesh.proto
//
// writes the named files and every file they import, imports first, and
// prints their names one a line (for protoc's arguments).
package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	jsPath := flag.String("js", "", "the package's dist/mod.js")
	out := flag.String("out", "", "where to write the FileDescriptorSet")
	flag.Parse()
	if *jsPath == "" || *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: descset -js dist/mod.js -out set.binpb meshtastic/mesh.proto ...")
		os.Exit(2)
	}
	if err := run(*jsPath, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "descset:", err)
		os.Exit(1)
	}
}

func run(jsPath, out string, roots []string) error {
	js, err := os.ReadFile(jsPath)
	if err != nil {
		return err
	}
	files, err := embeddedFiles(string(js))
	if err != nil {
		return fmt.Errorf("%s: %w", jsPath, err)
	}
	set, err := closure(files, roots)
	if err != nil {
		return err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	for _, f := range set.File {
		fmt.Println(f.GetName())
	}
	return nil
}

// fileDescCall matches one embedded file: the JavaScript name of its
// descriptor, the base64 FileDescriptorProto, and the optional list of the
// JavaScript names of the files it imports (possibly over several lines).
var fileDescCall = regexp.MustCompile(`const (\w+) = /\* @__PURE__ \*/ fileDesc\("([A-Za-z0-9+/=]+)"(?:,\s*\[([^\]]*)\])?\s*\)`)

// embeddedFiles decodes every file embedded in mod.js, with its imports and
// json names restored, by file name.
func embeddedFiles(js string) (map[string]*descriptorpb.FileDescriptorProto, error) {
	calls := fileDescCall.FindAllStringSubmatch(js, -1)
	if len(calls) == 0 {
		return nil, errors.New("no fileDesc(...) calls found: not a protobuf-es bundle, or its layout changed")
	}
	byVar := make(map[string]*descriptorpb.FileDescriptorProto, len(calls))
	byName := make(map[string]*descriptorpb.FileDescriptorProto, len(calls))
	for _, c := range calls {
		raw, err := decodeBase64(c[2])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c[1], err)
		}
		f := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(raw, f); err != nil {
			return nil, fmt.Errorf("%s: %w", c[1], err)
		}
		f.Dependency = nil
		for _, dep := range strings.Split(c[3], ",") {
			dep = strings.TrimSpace(dep)
			if dep == "" {
				continue
			}
			// Imports precede their importers in the bundle (JavaScript
			// constants must be defined before use).
			d, ok := byVar[dep]
			if !ok {
				return nil, fmt.Errorf("%s imports %s, which is not defined before it", c[1], dep)
			}
			f.Dependency = append(f.Dependency, d.GetName())
		}
		for _, m := range f.MessageType {
			restoreJSONNames(m)
		}
		byVar[c[1]] = f
		byName[f.GetName()] = f
	}
	return byName, nil
}

// decodeBase64 reads protobuf-es's base64, which may omit the padding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	return base64.RawStdEncoding.DecodeString(s)
}

// restoreJSONNames gives every field of m and its nested messages protoc's
// default json_name, which protobuf-es left out of the embedded copy.
func restoreJSONNames(m *descriptorpb.DescriptorProto) {
	for _, f := range m.Field {
		if f.JsonName == nil {
			f.JsonName = proto.String(jsonName(f.GetName()))
		}
	}
	for _, n := range m.NestedType {
		restoreJSONNames(n)
	}
}

// jsonName is protoc's default JSON name of a field: underscores dropped,
// the letter after each one upper-cased.
func jsonName(field string) string {
	var b strings.Builder
	upper := false
	for _, r := range field {
		switch {
		case r == '_':
			upper = true
		case upper:
			b.WriteString(strings.ToUpper(string(r)))
			upper = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// closure returns the roots and everything they import, each file after
// its imports.
func closure(files map[string]*descriptorpb.FileDescriptorProto, roots []string) (*descriptorpb.FileDescriptorSet, error) {
	set := new(descriptorpb.FileDescriptorSet)
	done := make(map[string]bool)
	var visit func(name string, from string) error
	visit = func(name, from string) error {
		if done[name] {
			return nil
		}
		f, ok := files[name]
		if !ok {
			if from == "" {
				return fmt.Errorf("%s is not in the package", name)
			}
			return fmt.Errorf("%s (imported by %s) is not in the package", name, from)
		}
		done[name] = true
		for _, dep := range f.Dependency {
			if err := visit(dep, name); err != nil {
				return err
			}
		}
		set.File = append(set.File, f)
		return nil
	}
	for _, r := range roots {
		if err := visit(r, ""); err != nil {
			return nil, err
		}
	}
	return set, nil
}
