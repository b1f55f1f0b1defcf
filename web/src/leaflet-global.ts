// The Leaflet plugins (clustering, heat map) extend the global ``L``: give them one before
// they load. This module must be imported before them.
import L from "leaflet";

(window as unknown as { L: typeof L }).L = L;

export default L;
