package lifeline

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"lifeline/clock"
	"lifeline/message"
	"lifeline/radio"
	"lifeline/radio/lora"
	"lifeline/radio/meshtastic"
	"lifeline/radio/rnode"
	"lifeline/radio/tnc"
	"lifeline/store"
)

// RadioConfig is one LoRa board on a serial port.
type RadioConfig struct {
	// Device is the serial port: /dev/ttyUSB0, /dev/ttyACM0, or better its
	// /dev/serial/by-id/ name, which survives re-plugging (see `lifeline
	// radios`).
	Device string `json:"device" toml:"device"`
	// Driver is "rnode" (an RNode or a Lifeline firmware-bridge board,
	// the default), "meshtastic" (a Meshtastic device over its serial
	// API: its radio is set up on the device itself, and region and preset
	// here must match it; docs/RADIOS.md) or "kiss" (a plain KISS TNC such
	// as MeshCore's KISS modem, whose radio is also set up on the device:
	// region, preset, frequency and power here must match it, for the
	// airtime arithmetic).
	Driver string `json:"driver,omitempty" toml:"driver,omitempty"`
	// Region is the band's rules by name (EU868, EU868-1, US915, AU915,
	// IN865, AS923); EU868 if empty.
	Region string `json:"region,omitempty" toml:"region,omitempty"`
	// Preset is the modulation by name (LongFast, ShortFast, ...);
	// LongFast if empty. Every node of an area must use the same.
	Preset string `json:"preset,omitempty" toml:"preset,omitempty"`
	// Frequency in Hz; the region's default channel if 0.
	Frequency uint32 `json:"frequency,omitempty" toml:"frequency,omitempty"`
	// TxPower in dBm; 14 (or the region's limit, if lower) if 0.
	TxPower int `json:"tx_power,omitempty" toml:"tx_power,omitempty"`
	// Hops is the hop limit of the floods this node starts; 6 if 0.
	Hops int `json:"hops,omitempty" toml:"hops,omitempty"`
	// RepairEvery is how often the node sends a repair digest; if 0, as
	// often as a tenth of the duty cycle allows, every 2 minutes at most.
	RepairEvery Duration `json:"repair_every,omitempty" toml:"repair_every,omitempty"`
	// DutyCycle and DutyWindow make the budget stricter than the region's
	// (a smaller fraction, or a shorter window to spread the sending);
	// 0 keeps the region's.
	DutyCycle  float64  `json:"duty_cycle,omitempty" toml:"duty_cycle,omitempty"`
	DutyWindow Duration `json:"duty_window,omitempty" toml:"duty_window,omitempty"`
}

// Radio defaults.
const (
	DefaultRadioRegion  = "EU868"
	DefaultRadioTxPower = 14
)

// resolve fills in the defaults and checks the settings, returning the
// region (with any stricter budget) and the modem.
func (rc RadioConfig) resolve() (RadioConfig, lora.Region, lora.Modem, error) {
	if rc.Device == "" {
		return rc, lora.Region{}, lora.Modem{}, fmt.Errorf("config: radio without a device: give its serial port, e.g. /dev/ttyUSB0 (see `lifeline radios`)")
	}
	if rc.Driver == "" {
		rc.Driver = "rnode"
	}
	if rc.Region == "" {
		rc.Region = DefaultRadioRegion
	}
	if rc.Preset == "" {
		rc.Preset = lora.DefaultModem
	}
	region, ok := lora.Regions[rc.Region]
	if !ok {
		return rc, region, lora.Modem{}, fmt.Errorf("config: radio %s: unknown region %q (EU868, EU868-1, US915, AU915, IN865, AS923)", rc.Device, rc.Region)
	}
	modem, ok := lora.ModemPresets[rc.Preset]
	if !ok {
		return rc, region, modem, fmt.Errorf("config: radio %s: unknown preset %q (LongFast, LongSlow, LongModerate, MediumFast, MediumSlow, ShortFast, ShortSlow)", rc.Device, rc.Preset)
	}
	switch {
	case rc.Driver != "rnode" && rc.Driver != "kiss" && rc.Driver != "meshtastic":
		return rc, region, modem, fmt.Errorf("config: radio %s: unknown driver %q: want rnode, meshtastic or kiss", rc.Device, rc.Driver)
	case rc.DutyCycle < 0 || rc.DutyCycle > region.DutyCycle:
		return rc, region, modem, fmt.Errorf("config: radio %s: duty_cycle %g: %s allows at most %g; it may only be made stricter", rc.Device, rc.DutyCycle, region.Name, region.DutyCycle)
	case rc.DutyWindow < 0 || time.Duration(rc.DutyWindow) > region.Window:
		return rc, region, modem, fmt.Errorf("config: radio %s: duty_window %s: %s measures over %s; it may only be made shorter", rc.Device, time.Duration(rc.DutyWindow), region.Name, region.Window)
	case rc.Hops < 0 || rc.Hops > radio.MaxHops:
		return rc, region, modem, fmt.Errorf("config: radio %s: hops %d: want 1 to %d (0: the default, %d)", rc.Device, rc.Hops, radio.MaxHops, radio.DefaultHops)
	case region.MaxDwell > 0 && modem.Airtime(radio.MaxFrame) > region.MaxDwell:
		return rc, region, modem, fmt.Errorf("config: radio %s: %s allows %v on air at a time, and a full frame at %s takes %v: choose a faster preset (MediumFast, ShortFast, ...)",
			rc.Device, region.Name, region.MaxDwell, rc.Preset, modem.Airtime(radio.MaxFrame).Round(time.Millisecond))
	case rc.TxPower < 0 || rc.TxPower > region.MaxPower:
		return rc, region, modem, fmt.Errorf("config: radio %s: tx_power %d dBm: %s allows at most %d", rc.Device, rc.TxPower, region.Name, region.MaxPower)
	case rc.RepairEvery < 0:
		return rc, region, modem, fmt.Errorf("config: radio %s: repair_every %s", rc.Device, time.Duration(rc.RepairEvery))
	}
	if rc.DutyCycle > 0 {
		region.DutyCycle = rc.DutyCycle
	}
	if rc.DutyWindow > 0 {
		region.Window = time.Duration(rc.DutyWindow)
	}
	if rc.Frequency != 0 {
		region.Frequency = rc.Frequency
	}
	if rc.TxPower == 0 {
		rc.TxPower = min(DefaultRadioTxPower, region.MaxPower)
	}
	return rc, region, modem, nil
}

// radioTag is the node's name to its radio neighbours in repair frames:
// two bytes of its key, so it stays the same across restarts.
func radioTag(id message.PublicKey) uint16 { return binary.BigEndian.Uint16(id[:2]) }

// newStation builds the driver and station of one radio. meshKey, the private mesh's
// key or nil, authenticates every frame on air (see radio/auth.go): the
// radios of a private mesh hear only each other.
func newStation(rc RadioConfig, st *store.Store, id message.PublicKey, meshKey []byte, clk *clock.Clock, log *slog.Logger) (*radio.Station, error) {
	rc, region, modem, err := rc.resolve()
	if err != nil {
		return nil, err
	}
	log = log.With("part", "radio", "device", rc.Device)
	var lim float64
	if region.DutyCycle < 1 && region.Window == time.Hour {
		lim = region.DutyCycle // the board keeps the hour's budget too, should the host misjudge
	}
	var l radio.Link
	switch rc.Driver {
	case "kiss":
		l = tnc.NewDriver(tnc.Config{Path: rc.Device, Airtime: modem.Airtime, Logger: log})
	case "meshtastic":
		l = meshtastic.NewDriver(meshtastic.DriverConfig{Path: rc.Device,
			Session: meshtastic.Config{Region: rc.Region, Preset: rc.Preset}, Logger: log})
	default:
		l = rnode.NewDriver(rnode.DriverConfig{
			Path: rc.Device,
			Radio: rnode.Config{Frequency: region.Frequency, Bandwidth: uint32(modem.Bandwidth), TxPower: int8(rc.TxPower),
				SF: uint8(modem.SpreadingFactor), CR: uint8(modem.CodingRate), LongTermLimit: lim},
			Logger: log,
		})
	}
	return radio.NewStation(l, st, radio.StationConfig{
		Router: radio.RouterConfig{Tag: radioTag(id), Region: region, Modem: modem, Hops: uint8(rc.Hops),
			RepairEvery: time.Duration(rc.RepairEvery), Seed: uint64(time.Now().UnixNano()), AirKey: meshKey, Clock: clk.Now},
		Preset: rc.Preset,
		Logger: log,
	}), nil
}
