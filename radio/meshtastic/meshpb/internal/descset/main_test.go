package main

import (
	"encoding/base64"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// embed is what protobuf-es writes for a file: its descriptor without
// imports or json names, base64 without padding.
func embed(t *testing.T, f *descriptorpb.FileDescriptorProto) string {
	t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

func TestEmbeddedFiles(t *testing.T) {
	a := &descriptorpb.FileDescriptorProto{Name: proto.String("x/a.proto"), Package: proto.String("x"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("A"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("want_config_id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_UINT32.Enum()},
		}, NestedType: []*descriptorpb.DescriptorProto{{Name: proto.String("In"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("rx_snr_2"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_FLOAT.Enum()},
		}}}}}}
	b := &descriptorpb.FileDescriptorProto{Name: proto.String("x/b.proto"), Package: proto.String("x")}
	c := &descriptorpb.FileDescriptorProto{Name: proto.String("x/c.proto"), Package: proto.String("x")}
	js := strings.Join([]string{
		`import { fileDesc } from "@bufbuild/protobuf/codegenv1";`,
		`const file_x_a = /* @__PURE__ */ fileDesc("` + embed(t, a) + `");`,
		`const ASchema = /* @__PURE__ */ messageDesc(file_x_a, 0);`,
		`const file_x_c = /* @__PURE__ */ fileDesc("` + embed(t, c) + `");`,
		`const file_x_b = /* @__PURE__ */ fileDesc("` + embed(t, b) + `", [`,
		`	file_x_a,`,
		`	file_x_c`,
		`]);`,
	}, "\n")
	files, err := embeddedFiles(js)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("%d files", len(files))
	}
	if deps := files["x/b.proto"].GetDependency(); len(deps) != 2 || deps[0] != "x/a.proto" || deps[1] != "x/c.proto" {
		t.Fatalf("b's imports: %q", deps)
	}
	m := files["x/a.proto"].GetMessageType()[0]
	if got := m.GetField()[0].GetJsonName(); got != "wantConfigId" {
		t.Fatalf("json name %q", got)
	}
	if got := m.GetNestedType()[0].GetField()[0].GetJsonName(); got != "rxSnr2" {
		t.Fatalf("nested json name %q", got)
	}

	set, err := closure(files, []string{"x/b.proto"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range set.File {
		names = append(names, f.GetName())
	}
	if strings.Join(names, " ") != "x/a.proto x/c.proto x/b.proto" {
		t.Fatalf("closure %q: imports first", names)
	}
	if _, err := closure(files, []string{"x/none.proto"}); err == nil {
		t.Fatal("a missing file was not an error")
	}
	if _, err := embeddedFiles("export {};"); err == nil {
		t.Fatal("a bundle without descriptors was not an error")
	}
}
