// The six built-in task types of SPEC §9; each file registers its handler when imported.
import "./object-create";
import "./batch-import";
import "./index-rebuild";
import "./clustering";
import "./taxonomy-apply";
import "./model-tuning";
