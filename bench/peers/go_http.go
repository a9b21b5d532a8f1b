// A Go net/http server for `make bench-peers`: the standard library only,
// the way Go users write one.  Run with GOMAXPROCS=1 when pinned to a CPU.
//
//	go-http [PORT]    (0 or nothing: a free port, printed on stdout)
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

var hello = []byte("Hello, World!")

func plaintext(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Server"] = []string{"go"}
	h["Content-Type"] = []string{"text/plain"}
	w.Write(hello)
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-http:", err)
		os.Exit(1)
	}
	fmt.Printf("go-http listening on http://%s/\n", ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", plaintext)
	http.Serve(ln, mux)
}
