package admin

import (
	"context"
	"slices"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// maxDirectoryOrderWalk bounds the newest orders read to find one
// directory's latest ones.
const maxDirectoryOrderWalk = 20000

// chooseDirectory sets the directory the page shows (?directory=, a
// label; "" every directory) and the choices of the selector. A name that
// is not configured shows every directory, with an error box.
func (d *dashboard) chooseDirectory(p *pageData, want string) {
	for _, n := range d.api.directoryNames() {
		p.Directories = append(p.Directories, audit.DirectoryLabel(n))
	}
	switch {
	case want == "":
	case slices.Contains(p.Directories, want):
		p.Directory = want
	default:
		p.Errors = append(p.Errors, "No directory "+want+" is configured: every directory is shown.")
	}
}

// expiryCache is the cache of the expiry timeline of a directory filter.
func (d *dashboard) expiryCache(dir string) *cached[*expiryView] {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.expiry[dir]
	if c == nil {
		c = &cached[*expiryView]{}
		d.expiry[dir] = c
	}
	return c
}

// newestOrders reads the n newest orders (of one directory unless dir is
// "") and reports whether there are more. For one directory it reads the
// newest orders of all in pages until it has n of them, at most
// maxDirectoryOrderWalk.
func (d *dashboard) newestOrders(ctx context.Context, n int, dir string) ([]*store.Order, bool, error) {
	list := func(c string, l int) (store.Page, error) { return d.api.Store.ListNewest(ctx, store.KindOrder, c, l) }
	if dir == "" {
		ids, more, err := newestIDs(list, n)
		if err != nil {
			return nil, false, err
		}
		orders, err := fetch(ctx, ids, d.api.Store.GetOrder)
		return slices.DeleteFunc(orders, func(o *store.Order) bool { return o == nil }), more, err
	}
	var out []*store.Order
	cursor, walked := "", 0
	for walked < maxDirectoryOrderWalk {
		page, err := list(cursor, 500)
		if err != nil {
			return nil, false, err
		}
		walked += len(page.IDs)
		orders, err := fetch(ctx, page.IDs, d.api.Store.GetOrder)
		if err != nil {
			return nil, false, err
		}
		for _, o := range orders {
			if o == nil || !inDirectory(o.Directory, dir) {
				continue
			}
			if len(out) == n {
				return out, true, nil
			}
			out = append(out, o)
		}
		if page.Next == "" {
			return out, false, nil
		}
		cursor = page.Next
	}
	return out, true, nil
}
