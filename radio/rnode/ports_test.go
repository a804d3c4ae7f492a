package rnode

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPorts builds a small sysfs and /dev tree, as the kernel lays them
// out, and lists what is in it.
func TestPorts(t *testing.T) {
	root := t.TempDir()
	mk := func(path string) {
		if err := os.MkdirAll(filepath.Join(root, path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		mk(filepath.Dir(name))
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tty := range []string{"ttyUSB0", "ttyACM0", "ttyS0", "tty1"} {
		mk("sys/devices/x/" + tty)
		link(filepath.Join(root, "sys/devices/x", tty), "sys/class/tty/"+tty)
	}
	mk("sys/bus/usb-serial/drivers/cp210x")
	link(filepath.Join(root, "sys/bus/usb-serial/drivers/cp210x"), "sys/devices/x/ttyUSB0/device/driver")
	mk("dev")
	if err := os.WriteFile(filepath.Join(root, "dev/ttyUSB0"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link(filepath.Join(root, "dev/ttyUSB0"), "dev/serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0")

	got := Ports(root)
	if len(got) != 2 || got[0].Path != "/dev/ttyACM0" || got[1].Path != "/dev/ttyUSB0" ||
		got[1].Driver != "cp210x" || got[1].ByID != "/dev/serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0" {
		t.Fatalf("ports %+v", got)
	}
	if len(Ports(t.TempDir())) != 0 {
		t.Fatal("ports found in an empty tree")
	}
}
