module github.com/duplex-ws/duplex

go 1.26
