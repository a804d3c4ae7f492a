// Package radio is Lifeline's LoRa link: over-the-air frames and their
// fragments, the router (managed flood, repair by reconciliation, and the
// scheduler that sends by priority within the duty cycle), and the station
// that joins the router to the store and a serial driver. The router and
// its parts are pure state machines; the drivers (radio/rnode, radio/tnc)
// and the serial port (radio/serialport) sit beside them, the arithmetic
// in radio/lora, the simulated air and boards in radio/air and
// radio/testbed. On a private mesh every frame carries a tag keyed by the
// mesh key (auth.go), checked before anything else reads the frame.
package radio
