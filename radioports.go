package lifeline

import "lifeline/radio/rnode"

// RadioPort is a serial port that may have a LoRa board behind it.
type RadioPort = rnode.Port

// RadioPorts lists the USB serial ports of this machine: the candidates
// for `lifeline run --radio`.
func RadioPorts() []RadioPort { return rnode.Ports("/") }
