package main

import (
	"errors"
	"log/slog"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// openRedis opens the Redis driver.
func openRedis(cfg *configs.Config, log *slog.Logger) (store.Store, error) {
	return nil, errors.New("store.driver: redis is not built yet")
}
