package meshtastic

import (
	"fmt"
	"strings"
	"time"

	"lifeline/radio/lora"
	"lifeline/radio/meshtastic/meshpb"
)

type (
	regionCode  = meshpb.Config_LoRaConfig_RegionCode
	modemPreset = meshpb.Config_LoRaConfig_ModemPreset
)

// Regions maps Lifeline's region names (lora.Regions) to Meshtastic's
// region codes where the two are the same band under the same rules
// (Meshtastic's LoRa configuration documentation lists each code's band,
// duty cycle and power): EU_868 is 869.4–869.65 MHz at 10 % and 27 dBm,
// as Lifeline's EU868. Lifeline's EU868-1 (868.0–868.6 MHz at 1 %) and
// AS923 (a band plan shared by several countries) have no single
// Meshtastic code: a node set to one of them gets a warning to check the
// device's region by hand.
var Regions = map[string]regionCode{
	"EU868": meshpb.Config_LoRaConfig_EU_868,
	"US915": meshpb.Config_LoRaConfig_US,
	"AU915": meshpb.Config_LoRaConfig_ANZ,
	"IN865": meshpb.Config_LoRaConfig_IN,
}

// Presets maps Lifeline's modem presets (lora.ModemPresets, which follow
// Meshtastic's names and settings) to Meshtastic's.
var Presets = map[string]modemPreset{
	"ShortFast":    meshpb.Config_LoRaConfig_SHORT_FAST,
	"ShortSlow":    meshpb.Config_LoRaConfig_SHORT_SLOW,
	"MediumFast":   meshpb.Config_LoRaConfig_MEDIUM_FAST,
	"MediumSlow":   meshpb.Config_LoRaConfig_MEDIUM_SLOW,
	"LongFast":     meshpb.Config_LoRaConfig_LONG_FAST,
	"LongModerate": meshpb.Config_LoRaConfig_LONG_MODERATE,
	"LongSlow":     meshpb.Config_LoRaConfig_LONG_SLOW,
}

// preamble is the preamble of every Meshtastic transmission, 16 symbols
// (Meshtastic's overview documentation: "a series of 16 up-chirps").
const preamble = 16

// presetModems are the modulations of Meshtastic's presets, including
// those Lifeline has no name for (Meshtastic's radio settings
// documentation, "Presets"): the airtime of what the device sends follows
// what it is set to, whatever the node is.
var presetModems = map[modemPreset]lora.Modem{
	meshpb.Config_LoRaConfig_SHORT_TURBO:    {Bandwidth: 500000, SpreadingFactor: 7, CodingRate: 5, Preamble: preamble},
	meshpb.Config_LoRaConfig_SHORT_FAST:     {Bandwidth: 250000, SpreadingFactor: 7, CodingRate: 5, Preamble: preamble},
	meshpb.Config_LoRaConfig_SHORT_SLOW:     {Bandwidth: 250000, SpreadingFactor: 8, CodingRate: 5, Preamble: preamble},
	meshpb.Config_LoRaConfig_MEDIUM_FAST:    {Bandwidth: 250000, SpreadingFactor: 9, CodingRate: 5, Preamble: preamble},
	meshpb.Config_LoRaConfig_MEDIUM_SLOW:    {Bandwidth: 250000, SpreadingFactor: 10, CodingRate: 5, Preamble: preamble},
	meshpb.Config_LoRaConfig_LONG_TURBO:     {Bandwidth: 500000, SpreadingFactor: 11, CodingRate: 8, Preamble: preamble},
	meshpb.Config_LoRaConfig_LONG_FAST:      {Bandwidth: 250000, SpreadingFactor: 11, CodingRate: 5, Preamble: preamble},
	meshpb.Config_LoRaConfig_LONG_MODERATE:  {Bandwidth: 125000, SpreadingFactor: 11, CodingRate: 8, Preamble: preamble},
	meshpb.Config_LoRaConfig_LONG_SLOW:      {Bandwidth: 125000, SpreadingFactor: 12, CodingRate: 8, Preamble: preamble},
	meshpb.Config_LoRaConfig_VERY_LONG_SLOW: {Bandwidth: 62500, SpreadingFactor: 12, CodingRate: 8, Preamble: preamble},
}

// deviceModem is the modulation a device's LoRa config sets, and whether
// it could be told: a preset, or (use_preset off) its own bandwidth in kHz
// (31 meaning 31.25 and 62 meaning 62.5, as config.proto says of such
// "special" numbers), spreading factor and coding rate.
func deviceModem(c *meshpb.Config_LoRaConfig) (lora.Modem, bool) {
	if c.GetUsePreset() {
		m, ok := presetModems[c.GetModemPreset()]
		return m, ok
	}
	bw := int(c.GetBandwidth()) * 1000
	switch c.GetBandwidth() {
	case 31:
		bw = 31250
	case 62:
		bw = 62500
	}
	m := lora.Modem{Bandwidth: bw, SpreadingFactor: int(c.GetSpreadFactor()), CodingRate: int(c.GetCodingRate()), Preamble: preamble}
	return m, m.Validate() == nil
}

// sameModulation reports whether two radios hear each other: the same
// bandwidth, spreading factor and coding rate (a receiver takes any
// preamble at least as long as its own).
func sameModulation(a, b lora.Modem) bool {
	return a.Bandwidth == b.Bandwidth && a.SpreadingFactor == b.SpreadingFactor && a.CodingRate == b.CodingRate
}

// modemName says what a device's LoRa config sets, for a warning.
func modemName(c *meshpb.Config_LoRaConfig) string {
	if c.GetUsePreset() {
		return c.GetModemPreset().String()
	}
	return fmt.Sprintf("custom (%d kHz, SF%d, 4/%d)", c.GetBandwidth(), c.GetSpreadFactor(), c.GetCodingRate())
}

// routingMeaning names a Routing.Error for link.Status.Errors (the
// meanings are mesh.proto's comments on Routing.Error).
func routingMeaning(e meshpb.Routing_Error) string {
	switch e {
	case meshpb.Routing_NO_ROUTE:
		return "no route"
	case meshpb.Routing_GOT_NAK:
		return "refused by a relay"
	case meshpb.Routing_TIMEOUT:
		return "timeout"
	case meshpb.Routing_NO_INTERFACE:
		return "no interface"
	case meshpb.Routing_MAX_RETRANSMIT:
		return "max retransmit"
	case meshpb.Routing_NO_CHANNEL:
		return "no channel"
	case meshpb.Routing_TOO_LARGE:
		return "too large"
	case meshpb.Routing_NO_RESPONSE:
		return "no response"
	case meshpb.Routing_DUTY_CYCLE_LIMIT:
		return "duty-cycle limit"
	case meshpb.Routing_BAD_REQUEST:
		return "bad request"
	case meshpb.Routing_NOT_AUTHORIZED:
		return "not authorized"
	case meshpb.Routing_PKI_FAILED, meshpb.Routing_PKI_UNKNOWN_PUBKEY, meshpb.Routing_PKI_SEND_FAIL_PUBLIC_KEY:
		return "encryption failed"
	case meshpb.Routing_RATE_LIMIT_EXCEEDED:
		return "rate limit exceeded"
	}
	return fmt.Sprintf("routing error %d", int32(e))
}

// backoff is how long to hold the next packet after the device said it
// may not send now: for a duty-cycle limit, the budget comes back only as
// the device's hour-long window slides, so a minute (doubling with each
// error in a row, to 10 minutes); for an airtime-fairness rate limit, a
// few seconds (doubling to a minute). Other errors are about one packet
// and hold nothing.
func backoff(e meshpb.Routing_Error, level int) time.Duration {
	var base, most time.Duration
	switch e {
	case meshpb.Routing_DUTY_CYCLE_LIMIT:
		base, most = time.Minute, 10*time.Minute
	case meshpb.Routing_RATE_LIMIT_EXCEEDED:
		base, most = 5*time.Second, time.Minute
	default:
		return 0
	}
	return min(base<<min(level, 10), most)
}

// warnings says what is wrong with a device's setup for Lifeline, each as
// what to do, in the words of the meshtastic command-line tool (the phone
// app has the same settings under Radio configuration).
func warnings(cfg Config, lc *meshpb.Config_LoRaConfig, dc *meshpb.Config_DeviceConfig) string {
	var w []string
	if lc != nil {
		want, mapped := Regions[cfg.Region]
		switch {
		case lc.GetRegion() == meshpb.Config_LoRaConfig_UNSET:
			to := "the region for your country"
			if mapped {
				to = want.String()
			}
			w = append(w, fmt.Sprintf("the device's region is not set, so it does not transmit: meshtastic --set lora.region %s", to))
		case cfg.Region != "" && !mapped:
			w = append(w, fmt.Sprintf("the node's region %s has no Meshtastic equivalent: check that the device's region %s is the same band and rules", cfg.Region, lc.GetRegion()))
		case mapped && lc.GetRegion() != want:
			w = append(w, fmt.Sprintf("the device's region is %s, the node's %s: meshtastic --set lora.region %s", lc.GetRegion(), cfg.Region, want))
		}
		if node, ok := lora.ModemPresets[cfg.Preset]; ok {
			dev, known := deviceModem(lc)
			if !known || !sameModulation(dev, node) {
				w = append(w, fmt.Sprintf("the device's modem is %s, the node's %s: meshtastic --set lora.use_preset true --set lora.modem_preset %s",
					modemName(lc), cfg.Preset, Presets[cfg.Preset]))
			}
		}
		if !lc.GetTxEnabled() {
			w = append(w, "the device's transmitter is off: meshtastic --set lora.tx_enabled true")
		}
	}
	if dc != nil {
		// config.proto, RebroadcastMode: CORE_PORTNUMS_ONLY "ignores
		// packets from non-standard portnums", PRIVATE_APP among them;
		// KNOWN_ONLY ignores packets from nodes not in the device's node
		// list, as another kit's device is until its node info is heard.
		// LOCAL_ONLY ignores only other channels' packets, and NONE only
		// stops rebroadcasting, which Lifeline does not need (hop limit 0).
		switch m := dc.GetRebroadcastMode(); m {
		case meshpb.Config_DeviceConfig_CORE_PORTNUMS_ONLY:
			w = append(w, "the device ignores Lifeline's packets (rebroadcast mode CORE_PORTNUMS_ONLY): meshtastic --set device.rebroadcast_mode ALL")
		case meshpb.Config_DeviceConfig_KNOWN_ONLY:
			w = append(w, "the device ignores packets from devices not in its node list (rebroadcast mode KNOWN_ONLY): meshtastic --set device.rebroadcast_mode ALL")
		}
	}
	return strings.Join(w, "; ")
}
