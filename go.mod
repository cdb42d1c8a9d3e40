module github.com/bulkhead-hv/bulkhead

go 1.26.0

require (
	github.com/stretchr/testify v1.11.1
	golang.org/x/arch v0.23.0
	pgregory.net/rapid v1.3.0
)

require (
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	github.com/usbarmory/tamago v1.26.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

tool github.com/usbarmory/tamago/cmd/tamago
