PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('schema_version','3');
INSERT INTO meta VALUES('project_id','"e8d3edf10728"');
INSERT INTO meta VALUES('image_root','"/tmp/v3gen/images"');
INSERT INTO meta VALUES('image_size','[8, 8]');
INSERT INTO meta VALUES('channels','3');
INSERT INTO meta VALUES('model','"cnn"');
INSERT INTO meta VALUES('width','0.25');
INSERT INTO meta VALUES('strategy','"fishermask"');
INSERT INTO meta VALUES('strategy_options','{}');
INSERT INTO meta VALUES('batch','6');
INSERT INTO meta VALUES('budget','null');
INSERT INTO meta VALUES('min_per_class','2');
INSERT INTO meta VALUES('seed','0');
INSERT INTO meta VALUES('max_epochs','3');
INSERT INTO meta VALUES('max_steps','6');
INSERT INTO meta VALUES('query_pool','2000');
INSERT INTO meta VALUES('cv_below','100');
INSERT INTO meta VALUES('min_eval','20');
INSERT INTO meta VALUES('cache_dir','null');
INSERT INTO meta VALUES('imports','[]');
INSERT INTO meta VALUES('created','1796172786.1957598');
CREATE TABLE classes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO classes VALUES(0,'red');
INSERT INTO classes VALUES(1,'green');
INSERT INTO classes VALUES(2,'navy');
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    added REAL NOT NULL
);
INSERT INTO images VALUES(1,'blue/000.png','9b5da9b0d7b7232644b590f7109df90e5444cc1e088f68338266b29e8d866c77',268,8,8,1796172783060620392,0,1796172786.23503232);
INSERT INTO images VALUES(2,'blue/001.png','e141b8bb5ddc7a873208ad867a7bc44256cc4ce5f92196c9533149f9ad09b649',268,8,8,1796172783060889163,0,1796172786.23503232);
INSERT INTO images VALUES(3,'green/000.png','2c83e16b21f0a452b0a2c73c17cded12a05a816bac6c2e434f8330644c0c11e6',268,8,8,1796172783059950694,0,1796172786.23503232);
INSERT INTO images VALUES(4,'green/001.png','a5ae24c348c2f37179ee057cc65b25f87626efcd1b3a1abadc9132f8945453d1',268,8,8,1796172783060269665,0,1796172786.23503232);
INSERT INTO images VALUES(5,'red/000.png','c7371e6cecab30148d05c0e5ef6305d0a521f437a62fdb12e543a8384467e09d',268,8,8,1796172783058265411,0,1796172786.23503232);
INSERT INTO images VALUES(6,'red/001.png','f2a4314fd4e910f848d97aeefd5208501e2a199d7561cef42906c9970bf72793',268,8,8,1796172783059375150,0,1796172786.23503232);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id),
    kind TEXT NOT NULL,
    class_id INTEGER REFERENCES classes(id),
    undoes INTEGER REFERENCES labels(id),
    source TEXT NOT NULL,
    client TEXT,
    created REAL NOT NULL,
    annotator TEXT
);
INSERT INTO labels VALUES(1,5,'label',0,NULL,'import',NULL,1796172786.3737673759,NULL);
INSERT INTO labels VALUES(2,3,'label',1,NULL,'import',NULL,1796172786.3737673759,NULL);
INSERT INTO labels VALUES(3,1,'label',2,NULL,'import',NULL,1796172786.3737673759,NULL);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    strategy TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT '',
    n_labels INTEGER NOT NULL DEFAULT 0,
    last_label_id INTEGER NOT NULL DEFAULT 0,
    checkpoint TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    phase TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT,
    message TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL,
    settings TEXT NOT NULL DEFAULT '{}',
    started_by TEXT
);
INSERT INTO rounds VALUES(1,'done','fishermask','cold start: diverse images (k-center on downsampled pixels) until every class has 2 labels (when this batch was chosen: red: 0, green: 0, blue: 0)',0,0,NULL,'{}','done',1,1,1160,'d8c7394f-647d-4f4f-a8e6-9fd847a0c52c:7262858','',1796172786.2481684684,1796172786.3730340004,'{"schema_version": 3, "project_id": "e8d3edf10728", "image_root": "/tmp/v3gen/images", "image_size": [8, 8], "channels": 3, "model": "cnn", "width": 0.25, "strategy": "fishermask", "strategy_options": {}, "batch": 6, "budget": null, "min_per_class": 2, "seed": 0, "max_epochs": 3, "max_steps": 6, "query_pool": 2000, "cv_below": 100, "min_eval": 20, "cache_dir": null, "imports": [], "created": 1796172786.1957598}','owner');
CREATE TABLE settings_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    changed REAL NOT NULL,
    changes TEXT NOT NULL
);
INSERT INTO settings_history VALUES(1,1796172786.3759622573,'{"classes": [["red", "green", "blue"], ["red", "green", "navy"]]}');
CREATE TABLE queue (
    position INTEGER NOT NULL,
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    round_id INTEGER,
    score REAL,
    guesses TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO queue VALUES(1,1,1,7.6373271942138671875,'[]');
INSERT INTO queue VALUES(5,2,1,1.9705014228820800781,'[]');
INSERT INTO queue VALUES(4,3,1,2.0493826866149902343,'[]');
INSERT INTO queue VALUES(0,4,1,NULL,'[]');
INSERT INTO queue VALUES(2,5,1,7.5911045074462890625,'[]');
INSERT INTO queue VALUES(3,6,1,2.0800142288208007812,'[]');
CREATE TABLE forgotten_images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    added REAL NOT NULL,
    forgotten REAL NOT NULL,
    kind TEXT,
    class_id INTEGER,
    labels TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE held_out (
    round_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    label INTEGER NOT NULL,
    pred INTEGER NOT NULL,
    prob REAL NOT NULL,
    PRIMARY KEY (round_id, image_id)
);
CREATE TABLE label_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    folds INTEGER NOT NULL,
    n_labels INTEGER NOT NULL DEFAULT 0,
    last_label_id INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE check_probs (
    check_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    label INTEGER NOT NULL,
    fold INTEGER NOT NULL,
    probs TEXT NOT NULL,
    PRIMARY KEY (check_id, image_id)
);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('rounds',1);
INSERT INTO sqlite_sequence VALUES('labels',3);
INSERT INTO sqlite_sequence VALUES('settings_history',1);
CREATE INDEX labels_image ON labels(image_id, id);
COMMIT;
