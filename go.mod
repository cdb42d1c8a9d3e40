module github.com/bulkhead-hv/bulkhead

go 1.26.0

require (
	github.com/stretchr/testify v1.11.1 // indirect
	github.com/usbarmory/tamago v1.26.0 // indirect
	golang.org/x/arch v0.23.0 // indirect
)

tool github.com/usbarmory/tamago/cmd/tamago
