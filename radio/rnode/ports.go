package rnode

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Port is a serial port that may have a radio board behind it.
type Port struct {
	Path   string `json:"path"`             // /dev/ttyUSB0
	ByID   string `json:"by_id,omitempty"`  // /dev/serial/by-id/usb-…: stable across re-plugging
	Driver string `json:"driver,omitempty"` // the kernel driver: cp210x, ch341, cdc_acm, …
}

// Ports lists the USB serial ports the system knows, from sysfs (root is
// "/" outside tests): what a LoRa board on USB shows up as. Built-in UARTs
// (ttyS*) are left out: they are rarely a radio and always present.
func Ports(root string) []Port {
	byID := map[string]string{}
	ids, _ := filepath.Glob(filepath.Join(root, "dev/serial/by-id/*"))
	for _, link := range ids {
		if target, err := filepath.EvalSymlinks(link); err == nil {
			byID[filepath.Base(target)] = "/dev/serial/by-id/" + filepath.Base(link)
		}
	}
	var out []Port
	ttys, _ := filepath.Glob(filepath.Join(root, "sys/class/tty/*"))
	for _, tty := range ttys {
		name := filepath.Base(tty)
		if !strings.HasPrefix(name, "ttyUSB") && !strings.HasPrefix(name, "ttyACM") {
			continue
		}
		p := Port{Path: "/dev/" + name, ByID: byID[name]}
		if drv, err := os.Readlink(filepath.Join(tty, "device/driver")); err == nil {
			p.Driver = filepath.Base(drv)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Port) int { return strings.Compare(a.Path, b.Path) })
	return out
}
